# plot_index.gp - PNGs of the index benchmark from the CSV bench_index writes:
# lookup latency (simcache p50/p99 over the socket, FAISS in process) and
# recall against the number of entries, one colour per dimension.
#
#   gnuplot -e "csv='build/bench/bench_index.csv'; outdir='docs/img'" bench/plot_index.gp
#
# Columns: see csv_head() in bench_index.c (1 n, 2 dim, 5 p50_us, 6 p99_us,
# 9 recall, 18 flat_p50_us, 21 lsh1_bits, 22 lsh1_p50_us, 23 lsh1_recall).
# Each series reads the rows of one dimension through awk, sorted by n.

if (!exists("csv")) csv = 'bench_index.csv'
if (!exists("outdir")) outdir = 'docs/img'

set datafile separator ','
set terminal pngcairo size 1000,720 font 'DejaVu Sans,11'
set key below maxrows 4
set grid
set logscale x
set xlabel 'entries in the namespace'
set xtics ('10k' 10000, '100k' 100000, '1M' 1000000)
set xrange [7000:1400000]

rows(dim) = sprintf("< awk -F, 'NR > 1 && $2 == %d' %s | sort -t, -k1,1n", dim, csv)
c1 = '#1f77b4'; c2 = '#d62728'; c3 = '#2ca02c'

set output outdir.'/index_latency.png'
set title 'Lookup latency: simcache over the Unix socket vs FAISS in process (one query, one thread)'
set ylabel 'microseconds (log scale)'
set logscale y
set format y '%g'
set label 1 'target 100k x 2048: p99 <= 150 us' at 100000,150 point pt 8 ps 2 lc rgb c2 offset 1,-1
set label 2 'target 1M x 1024: p99 <= 500 us' at 1000000,500 point pt 8 ps 2 lc rgb c1 offset -22,1
plot rows(1024) using 1:5 with linespoints lw 2 pt 7 lc rgb c1 title 'simcache p50, dim 1024', \
     rows(1024) using 1:6 with linespoints lw 2 dt 2 pt 6 lc rgb c1 title 'simcache p99, dim 1024', \
     rows(2048) using 1:5 with linespoints lw 2 pt 7 lc rgb c2 title 'simcache p50, dim 2048', \
     rows(2048) using 1:6 with linespoints lw 2 dt 2 pt 6 lc rgb c2 title 'simcache p99, dim 2048', \
     rows(4096) using 1:5 with linespoints lw 2 pt 7 lc rgb c3 title 'simcache p50, dim 4096', \
     rows(4096) using 1:6 with linespoints lw 2 dt 2 pt 6 lc rgb c3 title 'simcache p99, dim 4096', \
     rows(1024) using 1:18 with linespoints lw 1 dt 3 pt 4 lc rgb c1 title 'FAISS IndexFlatIP p50, 1024', \
     rows(2048) using 1:18 with linespoints lw 1 dt 3 pt 4 lc rgb c2 title 'FAISS IndexFlatIP p50, 2048', \
     rows(4096) using 1:18 with linespoints lw 1 dt 3 pt 4 lc rgb c3 title 'FAISS IndexFlatIP p50, 4096', \
     rows(1024) using 1:22 with linespoints lw 1 dt 4 pt 2 lc rgb c1 title 'FAISS IndexLSH-256 + re-rank p50, 1024', \
     rows(2048) using 1:22 with linespoints lw 1 dt 4 pt 2 lc rgb c2 title 'FAISS IndexLSH-256 + re-rank p50, 2048', \
     rows(4096) using 1:22 with linespoints lw 1 dt 4 pt 2 lc rgb c3 title 'FAISS IndexLSH-256 + re-rank p50, 4096'
unset label 1
unset label 2

set key below maxrows 3
set output outdir.'/index_recall.png'
set title 'Recall of the exact best match at cosine >= 0.8'
set ylabel 'recall'
unset logscale y
set format y '%.3f'
set yrange [*:1.002]
set arrow 1 from 7000,0.99 to 1400000,0.99 nohead dt 2 lc rgb 'black'
set label 3 'target 0.99' at 8000,0.9915
plot rows(1024) using 1:9 with linespoints lw 2 pt 7 lc rgb c1 title 'simcache, dim 1024', \
     rows(2048) using 1:9 with linespoints lw 2 pt 7 lc rgb c2 title 'simcache, dim 2048', \
     rows(4096) using 1:9 with linespoints lw 2 pt 7 lc rgb c3 title 'simcache, dim 4096', \
     rows(1024) using 1:23 with linespoints lw 1 dt 4 pt 2 lc rgb c1 title 'FAISS IndexLSH-256 + re-rank, 1024', \
     rows(2048) using 1:23 with linespoints lw 1 dt 4 pt 2 lc rgb c2 title 'FAISS IndexLSH-256 + re-rank, 2048', \
     rows(4096) using 1:23 with linespoints lw 1 dt 4 pt 2 lc rgb c3 title 'FAISS IndexLSH-256 + re-rank, 4096'
