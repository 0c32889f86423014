from authgate.cli.main import main

raise SystemExit(main())
