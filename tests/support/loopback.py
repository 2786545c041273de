"""Loopback ports for the daemons the Python tests start."""
import random
import socket


def free_port():
    """A loopback port free at the time of asking, below the kernel's ephemeral range: a port
    the kernel hands out itself (bind to port 0) can be taken a moment later as the local end of
    some outgoing connection (another test's client), and the daemon given it then fails to
    bind."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            ephemeral_low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_low = 32768
    low, high = 10000, max(11000, ephemeral_low) - 1
    for _ in range(1000):
        port = random.randint(low, high)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port below the ephemeral range")
