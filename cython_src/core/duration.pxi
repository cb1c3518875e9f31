# A number of seconds or microseconds, checked the one way every API of the
# package checks it: deadlines, a task receiver's wait() timeout, the hog
# watchdog's threshold, busy_poll.
#
# - a bool is refused (TypeError) although it is an int: True is never a
#   duration someone meant; so is anything that is not a real number;
# - NaN is refused (ValueError): it compares false with every bound and would
#   pass as "no limit" or "at once" depending on the test that met it;
# - bounds, where the call site has them, are checked here and named in the
#   message with the unit; infinity is a value like any other (a call site
#   without an upper bound decides what it means: "never", usually), and an
#   int or Fraction too large for a float counts as infinite.


def check_duration(value, str name, str unit="seconds", *, bint none=False,
                   str alternative=None, minimum=None, bint exclusive=False,
                   maximum=None):
    """``value`` as a float, or None where ``none`` allows None.

    TypeError for a bool or a non-real number (``alternative`` names what
    else the caller accepts, e.g. ``"'auto'"``), ValueError for NaN and for
    a value outside ``minimum`` (``exclusive``: the minimum itself is out
    too) .. ``maximum``. Every message names ``name`` and ``unit``."""
    what = "a number" if name == unit else "a number of " + unit
    if none:
        what += " or None"
    elif alternative is not None:
        what += " or " + alternative
    if value is None and none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError("%s must be %s, got %s" % (name, what, type(value).__name__))
    cdef double v
    try:
        v = float(value)
    except OverflowError:       # an int or Fraction beyond a float: infinite
        v = float("inf") if value > 0 else float("-inf")
    if minimum is None and maximum is None:
        if v != v:
            raise ValueError("%s must be %s, got nan" % (name, what))
        return v
    if not ((minimum is None or (v > minimum if exclusive else v >= minimum))
            and (maximum is None or v <= maximum)):      # NaN fails both
        if minimum is not None and maximum is not None and not exclusive:
            bounds = "between %s and %s" % (_bound(minimum), _bound(maximum))
        else:
            parts = []
            if minimum is not None:
                parts.append("%s %s" % (">" if exclusive else ">=", _bound(minimum)))
            if maximum is not None:
                parts.append("<= %s" % _bound(maximum))
            bounds = " and ".join(parts)
        shown = repr(value)
        if len(shown) > 40:
            shown = shown[:20] + "..." + shown[-8:]
        raise ValueError("%s must be %s %s, got %s" % (name, bounds, unit, shown))
    return v


cdef str _bound(bound):
    return str(bound) if isinstance(bound, int) else "%g" % bound
