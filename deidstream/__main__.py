from deidstream.cli import console

console()
