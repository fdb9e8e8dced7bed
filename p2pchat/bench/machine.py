"""
What machine and software a bench run measured.
"""

import os
import platform
import sqlite3
from typing import Dict, Optional


def _cpu_model() -> Optional[str]:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_mb() -> Optional[int]:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def _usable_cores() -> Optional[int]:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def describe_machine() -> Dict[str, object]:
    """
    @return: CPU model, cores, RAM, kernel, and the versions of Python,
        Twisted, PyNaCl, SQLite and p2pchat.
    """
    import nacl

    import p2pchat
    import twisted

    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": _usable_cores(),
        "ram_mb": _memory_mb(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "twisted": twisted.__version__,
        "pynacl": nacl.__version__,
        "sqlite": sqlite3.sqlite_version,
        "p2pchat": p2pchat.__version__,
    }
