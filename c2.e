/dev/fd/3: line 106: metabench: command not found
