"""What moving the plan once will cost, as an estimate: DataSync's charge and the
destination's requests. The rates are the scheduler's flags; their defaults are public
list prices of the dates below, which change, and differ by region.

DataSync charges per GB it copies (Basic mode about $0.0125, Enhanced mode $0.015) and, in
Enhanced mode, $0.55 per task execution: there the number of chunks matters (AWS Price List
data, usage types ``*-Transferred-Bytes-Enhanced`` and ``*-Task-Executions-Enhanced``,
effective 2024-11-01 and 2025-04-01; the Basic rate from the DataSync pricing page). Amazon
S3 Standard charges $0.005 per 1,000 PUT requests in US East (N. Virginia) (Amazon S3
pricing page, as of 2025), and DataSync writes one object per file, link and directory.
A GB is billed as 2^30 bytes. The estimate is for the first full copy: a rerun with
TransferMode CHANGED copies, and pays for, only what differs.
"""

from __future__ import annotations

from dataclasses import dataclass

RATES_AS_OF = "2025-04-01"
PER_GB = {"BASIC": 0.0125, "ENHANCED": 0.015}
PER_EXECUTION = {"BASIC": 0.0, "ENHANCED": 0.55}
PER_1000_PUTS = 0.005
GIB = 2 ** 30


@dataclass(frozen=True)
class Rates:
    per_gb: float
    per_execution: float
    per_1000_puts: float

    @classmethod
    def for_mode(cls, task_mode: str, per_gb: float | None = None, per_execution: float | None = None,
                 per_1000_puts: float | None = None) -> Rates:
        """The list prices of the task mode, but where a flag gave another rate."""
        return cls(PER_GB[task_mode] if per_gb is None else per_gb,
                   PER_EXECUTION[task_mode] if per_execution is None else per_execution,
                   PER_1000_PUTS if per_1000_puts is None else per_1000_puts)


@dataclass(frozen=True)
class Estimate:
    bytes: int
    executions: int
    """One per static task, one per chunk of a dynamic plan; retries come on top."""
    puts: int
    """One per file, link and directory written to the destination."""
    rates: Rates

    @property
    def datasync(self) -> float:
        return self.bytes / GIB * self.rates.per_gb + self.executions * self.rates.per_execution

    @property
    def requests(self) -> float:
        return self.puts / 1000 * self.rates.per_1000_puts

    @property
    def total(self) -> float:
        return self.datasync + self.requests

    def line(self) -> str:
        executions = (f" + {self.executions:,} execution(s) at ${self.rates.per_execution:g}"
                      if self.rates.per_execution else "")
        return (f"estimated cost of the first full copy: ${self.total:,.2f} = DataSync ${self.datasync:,.2f} "
                f"({self.bytes / GIB:,.1f} GB at ${self.rates.per_gb:g}/GB{executions}) + S3 requests "
                f"${self.requests:,.2f} ({self.puts:,} PUTs at ${self.rates.per_1000_puts:g} per 1,000); "
                f"list prices of {RATES_AS_OF} unless given (--price_* flags): an estimate")

    def to_json(self) -> dict:
        return {"estimate": True, "rates_as_of": RATES_AS_OF, "bytes": self.bytes, "executions": self.executions,
                "puts": self.puts, "per_gb": self.rates.per_gb, "per_execution": self.rates.per_execution,
                "per_1000_puts": self.rates.per_1000_puts, "datasync_usd": round(self.datasync, 2),
                "requests_usd": round(self.requests, 2), "total_usd": round(self.total, 2)}

