import sys

from edgecolbert.cli.main import main

sys.exit(main())
