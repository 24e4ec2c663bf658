"""The gateway's decisions: what an upstream answer means for its key
(outcomes), and the attempt planner that decides each request's course."""
