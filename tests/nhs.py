"""Valid test NHS numbers, made with the modulus-11 rule rather than copied from anywhere."""

from __future__ import annotations

_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def with_check_digit(nine: str) -> str | None:
    check = 11 - sum(int(d) * w for d, w in zip(nine, _WEIGHTS, strict=True)) % 11
    check = 0 if check == 11 else check
    return None if check == 10 else nine + str(check)


def valid_nhs_numbers(count: int, start: int = 999_000_000) -> list[str]:
    """``count`` valid NHS numbers in the 999 range, which is never issued to patients."""
    out: list[str] = []
    n = start
    while len(out) < count:
        number = with_check_digit(str(n))
        if number:
            out.append(number)
        n += 1
    return out
