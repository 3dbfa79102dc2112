# FrameError is defined in Python (fastflow.errors) so that the compiled module
# and the reference implementation raise the very same class.
from fastflow.errors import FrameError
