"""Pool replicas: the stream consumer loop and the Serve deployment that hosts it."""
