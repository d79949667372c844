import sys

from statepump.cli import main

sys.exit(main())
