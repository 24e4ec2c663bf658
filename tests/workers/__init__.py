"""byok serve --workers N: real processes on one port."""
