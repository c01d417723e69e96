import sys

from anionmotion.cli import main

sys.exit(main())
