namespace Shm.Tool;

/// <summary>
/// What a file is, whatever it is called: its device and inode. Two names, a mapping and a
/// descriptor are the same file exactly when their ids are equal; no path text is compared.
/// </summary>
/// <param name="Major">The device's major number.</param>
/// <param name="Minor">The device's minor number.</param>
/// <param name="Inode">The inode number on that device.</param>
internal readonly record struct FileId(uint Major, uint Minor, ulong Inode);
