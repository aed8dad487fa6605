"""Peak memory of a benchmark's fresh child interpreter, read the same way by every benchmark.

Children are ``python -c CODE`` processes; CODE embeds :data:`PEAK_RSS_MB`. It reads ``VmHWM``
(this process's own high-water mark) rather than ``ru_maxrss``, which Linux carries over from
the forking parent (a benchmark that has already loaded models) across fork and exec.
"""

PEAK_RSS_MB = (
    "next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')) / 1024"
)
"""A Python expression: the evaluating process's peak resident memory in MB (Linux)."""
