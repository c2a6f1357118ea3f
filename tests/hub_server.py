"""A loopback stand-in for the Hugging Face Hub's `resolve` endpoint.

Download tests run the real `hf_hub_download` against it (via `endpoint=`),
so the code under test meets the same headers, status codes and error codes
as on huggingface.co, without any network. Only what hf_hub_download needs
is imitated: `HEAD` and `GET /{repo_id}/resolve/{revision}/{filename}`.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


@dataclass
class FakeHub:
    """Files served per (repo_id, revision), and a log of the requests received."""

    files: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def add(self, repo_id: str, revision: str, filename: str, content: bytes) -> None:
        self.files.setdefault((repo_id, revision), {})[filename] = content

    @property
    def endpoint(self) -> str:
        assert self._server is not None, "FakeHub is not running"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def count(self, method: str) -> int:
        return sum(1 for seen, _ in self.requests if seen == method)

    def start(self) -> FakeHub:
        # Port 0: the OS picks a free one; 127.0.0.1: nothing off this machine can connect.
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-hub", daemon=True
        )  # short poll: stop() waits one poll
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut down and close the port, so later connections are refused."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join()
            self._server = self._thread = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _handler_for(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class ResolveHandler(BaseHTTPRequestHandler):
        """Answers like the Hub: metadata headers on success, `X-Error-Code` on 404."""

        def do_HEAD(self) -> None:
            self._answer(with_body=False)

        def do_GET(self) -> None:
            self._answer(with_body=True)

        def _answer(self, with_body: bool) -> None:
            hub.requests.append((self.command, self.path))
            parsed = _parse_resolve_path(self.path)
            if parsed is None:
                return self._not_found("RepoNotFound")
            repo_id, revision, filename = parsed
            if not any(repo == repo_id for repo, _ in hub.files):
                return self._not_found("RepoNotFound")
            repo_files = hub.files.get((repo_id, revision))
            if repo_files is None:
                return self._not_found("RevisionNotFound")
            content = repo_files.get(filename)
            if content is None:
                return self._not_found("EntryNotFound", commit=revision)
            digest = hashlib.sha256(content).hexdigest()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(content)))
            self.send_header("X-Repo-Commit", revision)
            # LFS files: the Hub's etag is the sha256, which becomes the blob name in the cache.
            self.send_header("ETag", f'"{digest}"')
            self.send_header("X-Linked-Etag", f'"{digest}"')
            self.send_header("X-Linked-Size", str(len(content)))
            self.end_headers()
            if with_body:
                self.wfile.write(content)

        def _not_found(self, error_code: str, commit: str | None = None) -> None:
            self.send_response(404)
            self.send_header("X-Error-Code", error_code)
            self.send_header("X-Error-Message", f"{error_code} (fake hub)")
            if commit is not None:
                self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Keep test output clean (the request log is `hub.requests`)."""

    return ResolveHandler


def _parse_resolve_path(path: str) -> tuple[str, str, str] | None:
    """(repo_id, revision, filename) from `/{repo_id}/resolve/{revision}/{filename}`."""
    repo_id, marker, rest = urlsplit(path).path.lstrip("/").partition("/resolve/")
    revision, _, filename = rest.partition("/")
    if not (marker and repo_id and revision and filename):
        return None
    return unquote(repo_id), unquote(revision), unquote(filename)
