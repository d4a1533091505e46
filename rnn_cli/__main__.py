from rnn_cli.cli import main

main()
