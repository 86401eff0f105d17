"""TaskFlow decorators of the PyWren provider (``@task.pywren``)."""
