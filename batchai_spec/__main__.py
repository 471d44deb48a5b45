from batchai_spec.cli import main

main()
