"""Task status messages as replicas share them: which message shows a task, whose turn it is."""
