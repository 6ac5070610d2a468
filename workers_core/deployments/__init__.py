"""Ray Serve: the HTTP gateway and the app builder that binds it to one pool per queue."""
