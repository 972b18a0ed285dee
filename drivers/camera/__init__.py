"""Cameras: real ones through OpenCV (USB/V4L2 devices, RTSP/HTTP streams, video files replayed as live sources), and
frames another process writes into a shared-memory ring (`shm:<ring>`, `shm_camera`)."""
