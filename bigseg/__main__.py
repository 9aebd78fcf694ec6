from bigseg.entry import run

run()
