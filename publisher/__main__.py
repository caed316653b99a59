from publisher.cli.main import main

raise SystemExit(main())
