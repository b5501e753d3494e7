import sys

from diffmath.cli import main

sys.exit(main())
