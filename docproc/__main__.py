from docproc.cli import main

main(prog_name="docproc")
