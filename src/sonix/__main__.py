from sonix.cli import main

raise SystemExit(main())
