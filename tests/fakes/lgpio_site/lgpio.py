"""A fake ``lgpio`` (the module rpi-lgpio's ``RPi.GPIO`` imports first), on sys.path for real imports.

Read from joan2937/lg: ``PY_LGPIO/lgpio_extra.py`` starts a notification thread
*at import* (``_notify_thread = _callback_thread()``), whose ``lgNotifyOpen``
(``lgNotify.c``) asks ``lguGetWorkDir()`` (``lgUtil.c``) for the work folder:
``$LG_WD`` (absolute, or relative to the CWD) else the CWD; it ``chdir()``s
the whole process there, ``mkfifo``s ``.lgd-nfy<handle>`` and returns
``LG_BAD_PATHNAME`` (-3) when that fails. Python then opens
``'.lgd-nfy{}'.format(handle)``, so the import dies with FileNotFoundError.

Root ignores permission bits, so a folder without any write bit stands in for
a read-only mount (``ProtectSystem=strict``) here.
"""

import os
import stat

LG_BAD_PATHNAME = -3
_HANDLE = 0


def _work_dir():
    wd = os.environ.get("LG_WD")
    if wd is None:
        return os.getcwd()
    return wd if wd.startswith("/") else os.path.join(os.getcwd(), wd)


def _notify_open():
    wd = _work_dir()
    try:
        os.chdir(wd)
    except OSError:
        pass  # lgUtil.c only logs "can't set working directory"
    name = os.path.join(wd, ".lgd-nfy%d" % _HANDLE)
    try:
        if not os.stat(wd).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
            raise PermissionError("read-only")
        if os.path.exists(name):
            os.unlink(name)
        os.mkfifo(name, 0o664)
        fd = os.open(name, os.O_RDWR | os.O_NONBLOCK)
    except OSError:
        return LG_BAD_PATHNAME
    return _HANDLE if fd >= 0 else LG_BAD_PATHNAME


class _callback_thread:
    def __init__(self):
        self._notify = _notify_open()
        self._file = open(".lgd-nfy{}".format(self._notify), "rb")
        self.fifo = os.path.join(os.getcwd(), ".lgd-nfy{}".format(self._notify))


_notify_thread = _callback_thread()
