"""Settings, all from the environment (12-factor). See README "Settings" for every variable.

``base`` holds Django itself; each integration has its own module, read in this order.
"""

from .accounts import *  # noqa: F403
from .api import *  # noqa: F403
from .base import *  # noqa: F403
from .logs import *  # noqa: F403
from .ocpp import *  # noqa: F403
from .services import *  # noqa: F403
