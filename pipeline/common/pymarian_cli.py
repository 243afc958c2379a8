"""pymarian's command line (`pymarian [decode|score|convert|vocab] ARGS`) with Ctrl-C's default action.

pymarian runs Marian's C++ inside the Python process. Python's SIGINT handler only sets a flag that is looked at
between bytecodes, so a Ctrl-C (the local engine's interruption) never stopped a running training: it went on,
orphaned, writing the checkpoint a resumed run was writing too. With the default action, SIGINT ends Marian as it
ends any native program. Run by path (stdlib and pymarian only), so it needs no PYTHONPATH.
"""

import signal
import sys


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    import _pymarian

    return _pymarian.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
