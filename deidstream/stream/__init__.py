"""Sources and sinks (PyAV) and the threaded pipeline between them."""
