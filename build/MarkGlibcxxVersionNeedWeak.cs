// MSBuild inline task (RoslynCodeTaskFactory, Type="Class"): see LibTorchSharpGlibcxxFix.targets for why.
// Walks an ELF64 little-endian shared object: section headers -> SHT_GNU_verneed (.gnu.version_r) -> Verneed
// records -> Vernaux entries, and ORs VER_FLG_WEAK into vna_flags of the entry whose name is VersionName.
using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public sealed class MarkGlibcxxVersionNeedWeak : Task
{
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlgWeak = 0x2;

    [Required] public ITaskItem[] Files { get; set; } = Array.Empty<ITaskItem>();
    [Required] public string VersionName { get; set; } = "";

    public override bool Execute()
    {
        foreach (var item in Files)
        {
            var path = item.ItemSpec;
            try
            {
                var bytes = File.ReadAllBytes(path);
                switch (Patch(bytes, VersionName))
                {
                    case PatchResult.Patched:
                        // Write in place: same size, and the file keeps its inode and permissions.
                        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Write))
                            fs.Write(bytes, 0, bytes.Length);
                        Log.LogMessage(MessageImportance.Normal, $"Marked {VersionName} weak in {path}");
                        break;
                    case PatchResult.AlreadyWeak:
                        Log.LogMessage(MessageImportance.Low, $"{VersionName} already weak in {path}");
                        break;
                    case PatchResult.NotNeeded:
                        Log.LogMessage(MessageImportance.Low, $"{path} has no version need on {VersionName}");
                        break;
                }
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
            {
                Log.LogError($"Could not patch {path}: {e.Message}");
            }
        }
        return !Log.HasLoggedErrors;
    }

    private enum PatchResult { Patched, AlreadyWeak, NotNeeded }

    private static PatchResult Patch(byte[] elf, string versionName)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (elf[4] != 2 || elf[5] != 1)
            throw new InvalidDataException("only 64-bit little-endian ELF is supported");

        ulong shoff = BitConverter.ToUInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A);
        int shnum = BitConverter.ToUInt16(elf, 0x3C);
        var result = PatchResult.NotNeeded;

        for (int i = 0; i < shnum; i++)
        {
            int sh = checked((int)shoff + i * shentsize);
            if (BitConverter.ToUInt32(elf, sh + 4) != ShtGnuVerneed) continue;

            int offset = checked((int)BitConverter.ToUInt64(elf, sh + 0x18));
            int link = (int)BitConverter.ToUInt32(elf, sh + 0x28);              // index of the string table
            int strtab = checked((int)BitConverter.ToUInt64(elf, (int)shoff + link * shentsize + 0x18));

            int verneed = offset;
            while (true)
            {
                int count = BitConverter.ToUInt16(elf, verneed + 2);             // vn_cnt
                int aux = verneed + (int)BitConverter.ToUInt32(elf, verneed + 8); // vn_aux
                for (int k = 0; k < count; k++)
                {
                    int nameOffset = (int)BitConverter.ToUInt32(elf, aux + 8);   // vna_name
                    if (ReadCString(elf, strtab + nameOffset) == versionName)
                    {
                        ushort flags = BitConverter.ToUInt16(elf, aux + 4);      // vna_flags
                        if ((flags & VerFlgWeak) != 0)
                        {
                            if (result == PatchResult.NotNeeded) result = PatchResult.AlreadyWeak;
                        }
                        else
                        {
                            flags |= VerFlgWeak;
                            elf[aux + 4] = (byte)(flags & 0xff);
                            elf[aux + 5] = (byte)(flags >> 8);
                            result = PatchResult.Patched;
                        }
                    }
                    int next = (int)BitConverter.ToUInt32(elf, aux + 12);        // vna_next
                    if (next == 0) break;
                    aux += next;
                }
                int nextNeed = (int)BitConverter.ToUInt32(elf, verneed + 12);    // vn_next
                if (nextNeed == 0) break;
                verneed += nextNeed;
            }
        }
        return result;
    }

    private static string ReadCString(byte[] data, int start)
    {
        int end = start;
        while (end < data.Length && data[end] != 0) end++;
        return Encoding.ASCII.GetString(data, start, end - start);
    }
}
