import sys

from tunerail.cli import main

sys.exit(main())
