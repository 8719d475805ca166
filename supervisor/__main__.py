from supervisor.entry import run

run()
