#!/usr/bin/env bash
# Every benchmark behind docs/benchmarks.md's "Latest run", in turn, on a quiet machine (about 45 minutes).
#
#   bash tools/bench_all.sh [RESULTS_DIR]      # default: bench-results/ in the current folder
#
# Run it in a checkout with arraystore and its test extras installed (pip install -e ".[test]"),
# nothing else running. As root on a VM with free page reporting (virtio_balloon), it turns the reporting
# off for the run and restores it after, and touches the free memory first (tools/prefault_memory.py):
# see "Memory on this VM" in docs/benchmarks.md. The s3rver rows need ARRAYSTORE_S3RVER (the path of
# s3rver's bin/s3rver.js, from `npm install s3rver@3.7.1`) or s3rver on PATH; without it they are skipped.
# Results: one .txt (and .md) per benchmark, and times.txt with the time and load average after each.
set -u
R=$(realpath -m "${1:-bench-results}")
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/src
mkdir -p $R
log() { echo "$(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg) $*" >> $R/times.txt; }
PR=/sys/module/page_reporting/parameters/page_reporting_order
OLD_PR=$(cat $PR 2>/dev/null)
[ -w $PR ] && echo 11 > $PR   # freed guest pages stay backed by the host (no free page reporting) during the run
trap '[ -n "$OLD_PR" ] && echo $OLD_PR > $PR' EXIT
# Bytecode compiled once, as pip does at install: else every process (a migration's workers too) compiles
# arraystore again where PYTHONDONTWRITEBYTECODE is set.
python -m compileall -q src tools >> $R/times.txt 2>&1
python tools/prefault_memory.py >> $R/times.txt
log start
COPY=cp,cp_fsync,cold_read,dropbehind_write,cached_write,duplex,as_raw_npy,as_raw_npy_durable,as_npy_raw,as_raw_h5
ZW=codec_zstd3,codec_zstd3_into,codec_gzip1,blosc_encode_numcodecs,blosc_encode_into,zstd_write_cores,blosc_write_cores,zstd_write_cores_pread,blosc_write_cores_pread,zarr_slab_none,zarr_slab_zstd,zarr_slab_blosc,tensorstore_none,tensorstore_zstd,as_raw_zarr,as_raw_zarr_zstd,as_raw_zarr_blosc,as_raw_zarr_gzip,as_h5_zarr
ZR=zstd_decode_cores,cold_read,cached_write,duplex,zarr_read_npy,zarrs_read_npy,tensorstore_read_npy,as_zarr_npy,as_zarr_h5,zarr_read_npy_sharded,zarrs_read_npy_sharded,tensorstore_read_npy_sharded,as_zarr_npy_sharded,as_zarr_h5_sharded,zarr_open_read,zarrs_open_read,tensorstore_open_read,as_open_read
python tools/bench_convert.py --interleave --size 1GiB --data random --runs 3 --regime cold --only $COPY,$ZW,zstd_write_overlap,blosc_write_overlap --markdown $R/cold.md > $R/cold.txt 2>&1; log cold
python tools/bench_convert.py --interleave --size 512MiB --data random --runs 3 --regime cache --only $COPY,$ZW --markdown $R/cache.md > $R/cache.txt 2>&1; log cache
python tools/bench_convert.py --interleave --size 1GiB --data smooth --runs 3 --regime cold --only codec_zstd3,codec_zstd3_into,codec_gzip1,blosc_encode_numcodecs,blosc_encode_into,zstd_write_overlap,blosc_write_overlap,zstd_write_cores,blosc_write_cores,zstd_write_cores_pread,blosc_write_cores_pread,duplex,zarr_slab_zstd,zarr_slab_blosc,tensorstore_zstd,as_raw_zarr_zstd,as_raw_zarr_blosc,as_raw_zarr_gzip --markdown $R/smooth.md > $R/smooth.txt 2>&1; log smooth
python tools/bench_convert.py --interleave --size 512MiB --data smooth --runs 3 --regime cache --only codec_zstd3,codec_zstd3_into,blosc_encode_numcodecs,blosc_encode_into,zstd_write_cores,blosc_write_cores,zstd_write_cores_pread,blosc_write_cores_pread,zarr_slab_zstd,zarr_slab_blosc,tensorstore_zstd,as_raw_zarr_zstd,as_raw_zarr_blosc --markdown $R/smooth_cache.md > $R/smooth_cache.txt 2>&1; log smooth_cache
python tools/bench_convert.py --interleave --size 1GiB --data random --runs 3 --regime cold --only $ZR --markdown $R/zread_cold.md > $R/zread_cold.txt 2>&1; log zread
python tools/bench_convert.py --interleave --size 512MiB --data random --runs 3 --regime cache --only zstd_decode_cores,zstd_decode_fresh_cores,zarr_open_read,zarrs_open_read,tensorstore_open_read,as_open_read --markdown $R/zread_cache.md > $R/zread_cache.txt 2>&1; log zread_cache
# Zarr -> npy / HDF5 with the source in the page cache, against the bare decode-and-write loops (the limit here)
ZRC=zstd_decode_cores,zstd_decode_write_cores,zstd_decode_write_cores_sharded,cached_write,zarr_read_npy,zarrs_read_npy,tensorstore_read_npy,as_zarr_npy,as_zarr_h5,zarr_read_npy_sharded,zarrs_read_npy_sharded,tensorstore_read_npy_sharded,as_zarr_npy_sharded,as_zarr_h5_sharded
python tools/bench_convert.py --interleave --size 512MiB --data random --runs 3 --regime cache --only $ZRC --markdown $R/zread_cache_conv.md > $R/zread_cache_conv.txt 2>&1; log zread_cache_conv
python tools/bench_convert.py --interleave --size 512MiB --data smooth --runs 3 --regime cache --only $ZRC --markdown $R/zread_cache_conv_smooth.md > $R/zread_cache_conv_smooth.txt 2>&1; log zread_cache_conv_smooth
# chunked gzip:1 HDF5 -> Zarr zstd:3 against h5py + zarr-python / zarrs / TensorStore and the in-memory transcode ceiling
H5Z=gzip_decode_1core,gzip_zstd_1core,gzip_zstd_cores,h5py_zarr_gzip,h5py_zarrs_gzip,h5py_tensorstore_gzip,as_h5gzip_zarr
python tools/bench_convert.py --interleave --size 512MiB --data random --runs 3 --regime cache --only $H5Z --markdown $R/h5gzip_zarr_cache.md > $R/h5gzip_zarr_cache.txt 2>&1; log h5gzip_zarr_cache
python tools/bench_convert.py --interleave --size 1GiB --data random --runs 3 --regime cold --only duplex,$H5Z --markdown $R/h5gzip_zarr_cold.md > $R/h5gzip_zarr_cold.txt 2>&1; log h5gzip_zarr_cold
python tools/bench_convert.py --interleave --size 3GiB --data random --runs 2 --regime big --memory-limit 1GiB --only cp,cold_read,dropbehind_write,cached_write,duplex,as_raw_npy,as_npy_raw,as_raw_h5 --markdown $R/big.md > $R/big.txt 2>&1; log big
python tools/bench_access.py --gib 2 --rows 100000 --repeat 7 > $R/access.txt 2>&1; log access
python tools/bench_migrate.py --small 2000 --large 0 --to npy --workers 1,2 --repeat 3 > $R/migrate.txt 2>&1; log migrate
python tools/bench_migrate.py --small 500 --large 0 --to npy --workers 1,2 --durable > $R/migrate_durable.txt 2>&1; log migrate_durable
python tools/bench_virtual.py --files 1000 --big-mib 512 --repeat 5 > $R/virtual.txt 2>&1; log virtual
python tools/bench_objstore.py --size 1GiB --runs 3 --clients "${OBJ:-zarr+obstore,zarr+obstore>npy,arraystore,bare,bare>npy}" --server moto > $R/obj_moto.txt 2>&1; log objmoto
python tools/bench_objstore.py --size 1GiB --runs 3 --clients "zarr+obstore,zarr+obstore>npy,arraystore,bare" --compression zstd:3 --server moto > $R/obj_moto_zstd.txt 2>&1; log objmotozstd
if [ -n "${ARRAYSTORE_S3RVER:-}" ] || command -v s3rver >/dev/null; then
    python tools/bench_objstore.py --size 1GiB --runs 3 --clients "${OBJ:-zarr+obstore,zarr+obstore>npy,arraystore,bare,bare>npy}" --server s3rver > $R/obj_s3rver.txt 2>&1; log objs3rver
else
    log "s3rver rows skipped: set ARRAYSTORE_S3RVER to s3rver's bin/s3rver.js"
fi
python tools/bench_virtual.py --files 10000 --small-only --repeat 3 > $R/virtual10k.txt 2>&1; log virtual10k
python tools/bench_objstore.py --size 4GiB --runs 1 --clients "${OBJ4:-zarr+obstore,zarr+obstore>npy,arraystore,bare,bare>npy}" --server moto > $R/obj_moto4.txt 2>&1; log objmoto4
log end
