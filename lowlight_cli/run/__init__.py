"""Running work on photos and videos: one hallway from the command line to the files.

A command builds one `plan.Plan` (inputs → typed `tasks.PhotoTask` /
`tasks.VideoTask`, each with its output and options, triaged once) and hands
it to the progress display and to an executor: `local.LocalExecutor` in this
process, or `ray_executor.RayExecutor` on a Ray cluster. Both turn a task's
exception into a reported failure in one place (`policy.guarded`). What is
done to one photo is `photo.py`'s, to one video `video.py`'s; which files and
where their results go is `places.py`'s. Torch-free until a task runs.
"""
