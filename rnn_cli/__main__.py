from rnn_cli.cli.entry import main

main()
