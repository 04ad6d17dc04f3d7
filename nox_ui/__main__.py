from nox_ui.cli import main

raise SystemExit(main())
