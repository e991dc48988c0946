# Latency against payload size, log-log, from `ndshm-bench --dat FILE`:
#   gnuplot -e "dat='run.dat'; out='docs/img/latency.png'" bench/plot.gp
if (!exists("dat")) dat = 'bench.dat'
if (!exists("out")) out = 'latency.png'
set terminal pngcairo size 1100,700 font ",11"
set output out
set logscale xy
set format x "10^{%L}"
set format y "10^{%L}"
set xlabel "payload (bytes)"
set ylabel "one-way latency, median (µs)"
set title "ndshm vs alternatives: median one-way latency (same run; memcpy = hardware floor)"
set grid xtics ytics mxtics mytics
set key outside right top
set xtics ("64 B" 64, "4 KiB" 4096, "64 KiB" 65536, "1 MiB" 1048576, "1080p" 6220800, "4K" 33177600)
stats dat using 1 nooutput
plot for [i=0:STATS_blocks-1] dat index i using 1:2 with linespoints lw 2 pt (i+4) title columnheader(1)
