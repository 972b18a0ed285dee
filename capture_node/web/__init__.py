"""The one HTTP server excap runs: uvicorn on a socket bound by excap, behind the Host and origin guard."""
