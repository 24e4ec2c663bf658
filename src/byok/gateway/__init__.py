"""The gateway's decisions: which pools of keys serve a model (routing), what
an upstream answer means for its key (outcomes), every decision of a
request's life (the attempt planner), the two API dialects, the request body
and the tokens used, and the re-validation of blocked keys."""
