import sys

from mtlswin.cli import main

sys.exit(main())
