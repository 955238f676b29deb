"""sh_test, forwarded to the native rule as rules_shell does before Bazel 8."""

def sh_test(**kwargs):
    native.sh_test(**kwargs)
