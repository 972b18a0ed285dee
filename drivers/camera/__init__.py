"""Real cameras through OpenCV: USB/V4L2 devices, RTSP/HTTP streams and video files replayed as live sources."""
