#!/usr/bin/env bash
# The integration suite on every containerd our users run, one cell after the other:
#
#   cell          containerd                 runsc        cases
#   1.6           bookworm's 1.6.20          2022-12-19   all
#   1.6/runsc24   bookworm's 1.6.20          2024-07-29   gVisor (runsc) cases
#   1.7           trixie's 1.7.24            2022-12-19   all
#   1.7/runsc24   trixie's 1.7.24            2024-07-29   gVisor (runsc) cases
#   2.1           sid's 2.1.9                2024-07-29   all
#   2.1/runsc22   sid's 2.1.9                2022-12-19   gVisor (runsc) cases
#
# MATRIX_CELLS picks cells by name ("1.7 2.1", default: all); extra arguments go to every
# cell's test binary. Each cell runs integration/run-suite.sh on its own fresh containerd
# (the releases besides bookworm's come from integration/versions.sh). At the end one line
# per cell: versions, cases, passed, failed, skipped; and results/tested-with.md, the
# README's "Tested with" table (make tested-with copies it there). Exit 1 if a cell failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ALL_CELLS="1.6 1.6/runsc24 1.7 1.7/runsc24 2.1 2.1/runsc22"
CELLS="${MATRIX_CELLS:-$ALL_CELLS}"
# the runsc cases: the gvisor module and the runsc bystander
RUNSC_FILTERS=(gvisor runsc)

bash integration/versions.sh fetch >&2

mkdir -p target results
summary=target/matrix-summary.tsv
: >"$summary"
status=0
for cell in $CELLS; do
    ctrd="${cell%%/*}"
    case "$cell" in
    1.6 | 1.7) runsc=2022 filters=("$@") what=all ;;
    2.1) runsc=2024 filters=("$@") what=all ;;
    */runsc24) runsc=2024 filters=("${RUNSC_FILTERS[@]}") what=runsc ;;
    */runsc22) runsc=2022 filters=("${RUNSC_FILTERS[@]}") what=runsc ;;
    *) echo "matrix.sh: unknown cell $cell (known: $ALL_CELLS)" >&2; exit 2 ;;
    esac
    log="target/matrix-${cell//\//-}.log"
    skips="target/matrix-${cell//\//-}.skips"
    : >"$skips"
    echo "==== cell $cell: containerd $ctrd, runsc $runsc, cases: $what (log: $log)"
    start=$SECONDS
    set +e
    ROBUST_IT_CONTAINERD="$ctrd" ROBUST_IT_RUNSC="$runsc" ROBUST_IT_SKIP_FILE="$PWD/$skips" \
        bash integration/run-suite.sh "${filters[@]}" 2>&1 | tee "$log" |
        grep -E '^(test .*(FAILED|ok)$|test result:|integration suite:|containerd.sh: containerd )' |
        grep -vE ' \.\.\. ok$'
    rc=${PIPESTATUS[0]}
    set -e
    ((rc == 0)) || status=1
    # libtest's own count; a skipped case passes there, so it is counted apart
    read -r passed failed < <(awk '/^test result:/ {
        for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
        END { print p + 0, f + 0 }' "$log")
    skipped=$(sort -u "$skips" | grep -c . || true)
    ctrd_full="$(awk '/containerd.sh: containerd / {print $3; exit}' "$log")"
    runsc_full="$(if [[ $runsc == 2022 ]]; then runsc --version 2>/dev/null; else "$(bash integration/versions.sh bin runsc-2024)/runsc" --version 2>/dev/null; fi | awk '/runsc version/ {print $3; exit}')"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$cell" "${ctrd_full:-$ctrd}" "${runsc_full:-$runsc}" \
        "$what" "$((passed - skipped))" "$failed" "$skipped" "$rc" "$((SECONDS - start))" >>"$summary"
done

echo
echo "matrix summary (containerd, runsc, cases: passed / failed / skipped):"
while IFS=$'\t' read -r cell ctrd runsc what passed failed skipped rc secs; do
    printf 'cell %-12s containerd %-16s runsc %-14s cases %-5s passed %4s, failed %s, skipped %s (%ss)\n' \
        "$cell" "$ctrd" "$runsc" "$what" "$passed" "$failed" "$skipped" "$secs"
done <"$summary"
# what each failing case said (its panic message, a few lines), so that a run seen only
# by its tail still names the cause; the whole output stays in the cell's log
while IFS=$'\t' read -r cell ctrd runsc what passed failed skipped rc secs; do
    ((failed > 0)) || continue
    log="target/matrix-${cell//\//-}.log"
    echo "cell $cell failed (log $log):"
    awk '/^---- .* stdout ----$/ { name = $2; inpanic = 0; next }
        name != "" && /panicked at/ { print "  " name ": " $0; inpanic = 1; n = 0; next }
        inpanic && (/^$/ || /^(note|stack backtrace):/ || ++n > 20) { inpanic = 0; name = ""; next }
        inpanic { print "    " $0 }' "$log"
done <"$summary"
# the plain closing line: every cell added up
awk -F'\t' '{p += $5; f += $6; s += $7} END {printf "matrix: %d passed, %d failed, %d skipped\n", p, f, s}' "$summary"

{
    echo "| containerd | runsc | cases | passed | failed | skipped |"
    echo "| --- | --- | --- | ---: | ---: | ---: |"
    while IFS=$'\t' read -r cell ctrd runsc what passed failed skipped rc secs; do
        echo "| $ctrd | $runsc | $what | $passed | $failed | $skipped |"
    done <"$summary"
    echo
    echo "From integration/matrix.sh (\`make test\`, \`make test-matrix\`) on $(date -u +%F). Skipped cases:"
    echo
    for f in target/matrix-*.skips; do
        c="${f#target/matrix-}"; c="${c%.skips}"
        sort -u "$f" | while IFS=$'\t' read -r case why; do echo "- cell $c, \`$case\`: $why"; done
    done
} >results/tested-with.md
exit "$status"
