from supervisor.cli.entry import run

run()
