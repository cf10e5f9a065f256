import sys

from zerosearch_rl.cli import main

sys.exit(main())
