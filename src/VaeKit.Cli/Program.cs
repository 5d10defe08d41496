// vae: a thin command line over the VaeKit library. Parsing and reporting live here; all logic is in src/VaeKit.
return VaeKit.Cli.VaeCli.Run(args, VaeKit.Cli.Terminal.Console(), Console.Error);
