"""Reading and writing photos and video frames."""
