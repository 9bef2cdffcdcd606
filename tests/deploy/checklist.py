# The deploy tests' checklist: one "ok"/"FAIL" line per expectation, the detail under a failure,
# and a count for the exit status.


class checklist:
    def __init__(self):
        self.failures = 0

    def expect(self, ok, what, detail=""):
        print(("ok   " if ok else "FAIL ") + what, flush=True)
        if not ok:
            self.failures += 1
            if detail:
                print("  " + str(detail).replace("\n", "\n  "), flush=True)
        return ok
