"""`python -m sqlwright …`: the command line, as the `sqlwright` executable runs it (and as
`accelerate launch -m sqlwright train …` starts one training process per device)."""

from sqlwright.cli import main

if __name__ == "__main__":
    main()
