# bench/stats.awk — awk functions the benchmark summaries share (run.sh,
# ensemble.sh prepend this file to their programs). mawk has no asort: a
# small insertion sort does.

# kv(KEY): the value of KEY=VALUE among the current line's fields.
function kv(key,   i, a) {
    for (i = 1; i <= NF; i++) { split($i, a, "="); if (a[1] == key) return a[2] }
    return ""
}
# median(LIST): the median of a space-separated list of numbers.
function median(list,   n, v, i, j, x) {
    n = split(list, v, " ")
    if (n == 0) return ""
    for (i = 2; i <= n; i++) {
        x = v[i] + 0
        for (j = i - 1; j >= 1 && v[j] + 0 > x; j--) v[j + 1] = v[j]
        v[j + 1] = x
    }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function fmt_rate(x) {
    if (x == "") return "-"
    if (x >= 10000) return sprintf("%.0fk", x / 1000)
    if (x >= 1000) return sprintf("%.1fk", x / 1000)
    return sprintf("%.0f", x)
}
function fmt_us(x) { return x == "" ? "-" : (x >= 100 ? sprintf("%.0f", x) : sprintf("%.1f", x)) }
