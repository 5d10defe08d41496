// libtorch's RNG, default dtype and thread count are process-wide: run test classes one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
