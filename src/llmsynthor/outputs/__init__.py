"""Writing what a run made: files, manifests, the HTML report's sections."""
