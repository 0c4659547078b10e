import sys

from deidstream.cli import main

sys.exit(main())
